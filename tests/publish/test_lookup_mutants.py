"""The lookup derivation, pinned by independent constructions (hashlib, hmac, AESGCM): the
rules an applicant's browser page relies on (normalisation, lookup.json, file name and key,
the sealed file). Written to kill mutants of allocation/publish/lookup.py (bench/mutation.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from allocation.publish import lookup

SALT = bytes(range(16))


def _reference(salt: bytes, round_id: str, app_id: str, code: str, iterations: int) -> tuple[str, bytes]:
    """The documented construction, spelled out with the standard library only."""
    master = hashlib.pbkdf2_hmac("sha256", code.encode("utf-8"),
                                 salt + round_id.encode("utf-8") + b"\x00" + app_id.encode("utf-8"),
                                 iterations, dklen=32)
    prk = hmac.new(b"\x00" * 32, master, "sha256").digest()

    def expand(info: str) -> bytes:
        return hmac.new(prk, info.encode() + b"\x01", "sha256").digest()

    return expand("voucher-lookup/1 file-name").hex(), expand("voucher-lookup/1 aes-256-gcm-key")


def test_ids_are_nfkc_and_trimmed_but_keep_their_case():
    assert lookup.normalise_id("  Ｒ１－０００００１\t") == "R1-000001"   # full-width digits and hyphen
    assert lookup.normalise_id(" r1-000001 ") == "r1-000001"              # case is kept
    assert lookup.normalise_id("ﬁ-1") == "fi-1"                            # ligature decomposed
    assert lookup.normalise_id("   ") == ""


def test_codes_are_nfkc_trimmed_and_upper_cased():
    assert lookup.normalise_code("  ａｂｃｄ ｅｆｇｈ \n") == "ABCD EFGH"
    assert lookup.normalise_code("ﬁx12345") == "FIX12345"
    assert lookup.normalise_code("AbC") == "ABC"
    assert lookup.normalise_code(" ") == ""


def test_derive_equals_the_reference_construction_after_normalisation():
    params = lookup.LookupParams("2026-R1", SALT, 1_000)
    name, key = lookup.derive(params, " Ｒ１-000001 ", "ａbcd efgh ")
    assert (name, key) == _reference(SALT, "2026-R1", "R1-000001", "ABCD EFGH", 1_000)
    assert len(name) == 64 and len(key) == 32 and bytes.fromhex(name) != key
    # Korean text in id and code: UTF-8 bytes, not another encoding
    params = lookup.LookupParams("2026-가을", SALT, 1_000)
    assert lookup.derive(params, "신청-1", "코드코드코드코드") == \
        _reference(SALT, "2026-가을", "신청-1", "코드코드코드코드", 1_000)


def test_every_input_of_the_derivation_changes_name_and_key():
    base = lookup.LookupParams("R", SALT, 1_000)
    ref = lookup.derive(base, "A-1", "CODE1234")
    variants = [
        lookup.derive(lookup.LookupParams("R2", SALT, 1_000), "A-1", "CODE1234"),
        lookup.derive(lookup.LookupParams("R", bytes(16), 1_000), "A-1", "CODE1234"),
        lookup.derive(lookup.LookupParams("R", SALT, 1_001), "A-1", "CODE1234"),
        lookup.derive(base, "A-2", "CODE1234"),
        lookup.derive(base, "A-1", "CODE1235"),
        # the 0x00 separator: round "R" + id "A-1" is not round "RA" + id "-1"
        lookup.derive(lookup.LookupParams("RA", SALT, 1_000), "-1", "CODE1234"),
    ]
    for name, key in variants:
        assert name != ref[0] and key != ref[1]
    assert lookup.derive(base, "A-1", "code1234") == ref          # case of the code is ignored
    assert lookup.derive(base, "a-1", "CODE1234") != ref          # case of the id is not


def test_params_to_json_is_the_contract_of_the_page():
    params = lookup.LookupParams("2026-R1", SALT, 123_456)
    assert params.to_json() == {
        "format": "voucher-lookup/1", "round_id": "2026-R1",
        "salt": base64.b64encode(SALT).decode("ascii"),
        "kdf": {"name": "PBKDF2", "hash": "SHA-256", "iterations": 123_456, "length": 32,
                "salt": "salt ‖ utf8(round_id) ‖ 0x00 ‖ utf8(NFKC(trim(application_id)))",
                "password": "utf8(upper(NFKC(trim(receipt_code))))"},
        "name": {"name": "HKDF", "hash": "SHA-256", "info": "voucher-lookup/1 file-name", "encoding": "hex"},
        "key": {"name": "HKDF", "hash": "SHA-256", "info": "voucher-lookup/1 aes-256-gcm-key",
                "cipher": "AES-256-GCM", "aad": "utf8(file name without .json)"},
        "path": "r/{name}.json",
    }
    text = json.dumps(params.to_json())
    assert lookup.LookupParams.from_json(json.loads(text)) == params


def test_from_json_refuses_another_format_and_reads_iterations_as_int():
    data = lookup.LookupParams("R", SALT, 1_000).to_json()
    data["kdf"]["iterations"] = "2000"
    assert lookup.LookupParams.from_json(data) == lookup.LookupParams("R", SALT, 2_000)
    with pytest.raises(ValueError, match="unknown lookup format 'voucher-lookup/2'"):
        lookup.LookupParams.from_json({**data, "format": "voucher-lookup/2"})
    with pytest.raises(ValueError, match="unknown lookup format None"):
        lookup.LookupParams.from_json({k: v for k, v in data.items() if k != "format"})


def test_new_params_have_a_fresh_16_byte_salt_and_the_given_iterations():
    a, b = lookup.LookupParams.new("R-9", 150_000), lookup.LookupParams.new("R-9", 150_000)
    assert (a.round_id, a.iterations) == ("R-9", 150_000)
    assert isinstance(a.salt, bytes) and len(a.salt) == 16 and len(b.salt) == 16
    assert a.salt != b.salt


def test_sealed_file_opens_with_plain_aes_gcm_and_its_name_as_aad():
    name, key = _reference(SALT, "R", "A-1", "CODE1234", 1_000)
    blob = lookup.seal(name, key, b"{\"status\": \"awarded\"}   ")
    assert blob.endswith(b"}\n") and blob.count(b"\n") == 1
    data = json.loads(blob)
    assert set(data) == {"v", "iv", "ct"} and data["v"] == 1
    iv, ct = base64.b64decode(data["iv"]), base64.b64decode(data["ct"])
    assert len(iv) == 12
    assert len(ct) == len(b"{\"status\": \"awarded\"}   ") + 16          # GCM tag
    assert AESGCM(key).decrypt(iv, ct, name.encode()) == b"{\"status\": \"awarded\"}   "
    assert lookup.seal(name, key, b"x") != lookup.seal(name, key, b"x")     # random nonce


def test_unseal_opens_only_the_right_file_with_the_right_key():
    name, key = _reference(SALT, "R", "A-1", "CODE1234", 1_000)
    other_name, other_key = _reference(SALT, "R", "A-1", "CODE9999", 1_000)
    iv = bytes(range(12))
    ct = AESGCM(key).encrypt(iv, b"payload", name.encode())
    blob = json.dumps({"v": 1, "iv": base64.b64encode(iv).decode(), "ct": base64.b64encode(ct).decode()})
    assert lookup.unseal(name, key, blob.encode()) == b"payload"
    assert lookup.unseal(name, other_key, blob.encode()) is None             # wrong code
    assert lookup.unseal(other_name, key, blob.encode()) is None             # other file's name
    tampered = base64.b64encode(bytes([ct[0] ^ 1]) + ct[1:]).decode()
    assert lookup.unseal(name, key, json.dumps({"v": 1, "iv": base64.b64encode(iv).decode(),
                                                "ct": tampered}).encode()) is None
    assert lookup.unseal(name, key, b"not json") is None
    assert lookup.unseal(name, key, b"{}") is None
