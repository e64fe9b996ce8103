"""Publication: what applicants and the public see, immutable and verifiable.

version      publish(): PUBLISH_ROOT/<round>/v<N>/ written atomically, the audit entry
manifest     sha256 of every file of a version; verify()
award_list   the public award list (awardees only, masked, formula-safe): CSV, Parquet, XLSX, HTML
lookup       sealed per-applicant results (id + receipt code) and the officers' lookup
report       the round report (aggregates only) and the page templates
diff         what changed between two award lists (voucher diff, changes.json, audit)
audit        the round's append-only audit trail
index        PUBLISH_ROOT/index.json
"""
