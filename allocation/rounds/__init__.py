"""A round's stages: validate -> score -> allocate (allocate), the one finishing path that
solves, explains and writes results (results), the approval text (approval), and the
lifecycle after publication (lifecycle/)."""
