"""A bucket's settings page: default encryption and lifecycle rules, shown and edited.

Every change is one ordinary S3 call as the signed-in identity (PutBucketEncryption,
DeleteBucketEncryption, PutBucketLifecycleConfiguration, DeleteBucketLifecycle), so S3's own
validation answers a bad setting and its message is shown. Lifecycle rules are edited as S3 keeps
them, a whole configuration at a time, as the AWS console does: a rule is added to (or removed
from) the configuration just read, and the page also offers the configuration as JSON to edit.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from strata.console.aws import AwsError
from strata.console.s3_pages import read_setting
from strata.console.web import Page, form_int, url
from strata.protocol.http import HttpResponse
from strata.services.s3.lifecycle_rules import RANK
from strata.services.s3.sse import KMS_MODES, MODES

ALGORITHMS = {"AES256": "SSE-S3 (AES256)", "aws:kms": "SSE-KMS", "aws:kms:dsse": "DSSE-KMS"}
assert set(ALGORITHMS) == set(MODES)
TRANSITION_CLASSES = [c for c, rank in sorted(RANK.items(), key=lambda kv: kv[1]) if rank > 0]


async def read_lifecycle(page: Page, bucket: str) -> dict:
    """The bucket's lifecycle configuration as PutBucketLifecycleConfiguration takes it ({} if none)."""
    answer = await read_setting(page, "get_bucket_lifecycle_configuration", Bucket=bucket)
    if not answer:
        return {}
    config = {"Rules": answer.get("Rules", [])}
    if answer.get("TransitionDefaultMinimumObjectSize"):
        config["TransitionDefaultMinimumObjectSize"] = answer["TransitionDefaultMinimumObjectSize"]
    return config


def _rule_summary(rule: dict) -> str:
    """What a rule does, in a line."""
    parts = []
    if "Expiration" in rule:
        e = rule["Expiration"]
        if "Days" in e:
            parts.append(f"expire after {e['Days']} day(s)")
        elif "Date" in e:
            parts.append(f"expire on {e['Date']}")
        if e.get("ExpiredObjectDeleteMarker"):
            parts.append("remove expired delete markers")
    for t in rule.get("Transitions", []):
        when = f"after {t['Days']} day(s)" if "Days" in t else f"on {t.get('Date')}"
        parts.append(f"to {t.get('StorageClass')} {when}")
    if "NoncurrentVersionExpiration" in rule:
        parts.append(
            f"expire noncurrent versions after {rule['NoncurrentVersionExpiration'].get('NoncurrentDays')} day(s)"
        )
    for t in rule.get("NoncurrentVersionTransitions", []):
        parts.append(f"noncurrent versions to {t.get('StorageClass')} after {t.get('NoncurrentDays')} day(s)")
    if "AbortIncompleteMultipartUpload" in rule:
        days = rule["AbortIncompleteMultipartUpload"].get("DaysAfterInitiation")
        parts.append(f"abort incomplete uploads after {days} day(s)")
    return "; ".join(parts) or "no action"


def _rule_scope(rule: dict) -> str:
    f = rule.get("Filter") or {}
    if "Prefix" in rule:  # the old form of a filter
        return f"prefix “{rule['Prefix']}”"
    if "And" in f:
        f = f["And"]
    scope = []
    if "Prefix" in f:
        scope.append(f"prefix “{f['Prefix']}”" if f["Prefix"] else "whole bucket")
    for t in f.get("Tags", []) + ([f["Tag"]] if "Tag" in f else []):
        scope.append(f"tag {t['Key']}={t['Value']}")
    for k, label in (("ObjectSizeGreaterThan", "larger than"), ("ObjectSizeLessThan", "smaller than")):
        if k in f:
            scope.append(f"{label} {f[k]:,} bytes")
    return ", ".join(scope) or "whole bucket"


async def settings(page: Page) -> HttpResponse:
    name = page.query.get("bucket", "")
    encryption, lifecycle = await asyncio.gather(
        read_setting(page, "get_bucket_encryption", Bucket=name), read_lifecycle(page, name)
    )
    rule = ((encryption or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules") or [{}])[0]
    default = rule.get("ApplyServerSideEncryptionByDefault", {})
    blocked = (rule.get("BlockedEncryptionTypes") or {}).get("EncryptionType") or []
    rules = lifecycle.get("Rules", [])
    return page.render(
        "s3_settings.html",
        title=f"Settings of {name} · S3",
        bucket=name,
        algorithm=default.get("SSEAlgorithm", "AES256"),
        kms_key=default.get("KMSMasterKeyID", ""),
        bucket_key=bool(rule.get("BucketKeyEnabled")),
        block_ssec="SSE-C" in blocked,
        algorithms=ALGORITHMS,
        rules=[{"r": r, "scope": _rule_scope(r), "does": _rule_summary(r)} for r in rules],
        lifecycle_json=json.dumps(lifecycle or {"Rules": []}, indent=2, default=str, sort_keys=True),
        classes=TRANSITION_CLASSES,
        back=url("/s3/settings", bucket=name),
    )


async def set_encryption(page: Page) -> HttpResponse:
    """PutBucketEncryption with the form's one rule (or DeleteBucketEncryption: back to SSE-S3)."""
    form, name = page.form, page.form.get("bucket", "")
    back = url("/s3/settings", bucket=name)
    if form.get("action") == "reset":
        done = f"Default encryption of {name} is back to S3's default (SSE-S3)."
        return await page.act("s3", "delete_bucket_encryption", done, back, Bucket=name)
    algorithm = form.get("algorithm", "")
    default: dict[str, Any] = {"SSEAlgorithm": algorithm}
    if form.get("kms_key", "").strip():
        default["KMSMasterKeyID"] = form["kms_key"].strip()
    rule = {
        "ApplyServerSideEncryptionByDefault": default,
        "BucketKeyEnabled": form.get("bucket_key") == "1",
        "BlockedEncryptionTypes": {"EncryptionType": ["SSE-C" if form.get("block_ssec") == "1" else "NONE"]},
    }
    label = ALGORITHMS.get(algorithm, algorithm)
    if algorithm in KMS_MODES:
        label += f" with {default.get('KMSMasterKeyID', 'the AWS managed key aws/s3')}"
    return await page.act(
        "s3",
        "put_bucket_encryption",
        f"Default encryption of {name} is now {label}.",
        back,
        Bucket=name,
        ServerSideEncryptionConfiguration={"Rules": [rule]},
    )


def _rule_from_form(form: dict[str, str]) -> dict:
    """One lifecycle rule from the add-a-rule form (S3 validates it when the configuration is put)."""
    rule: dict[str, Any] = {
        "ID": form.get("id", "").strip(),
        "Status": "Enabled" if form.get("enabled", "1") == "1" else "Disabled",
        "Filter": {"Prefix": form.get("prefix", "")},
    }
    if not rule["ID"]:
        del rule["ID"]  # S3 names it
    expire = form_int(form, "expire_days", "Expire after")
    if expire is not None:
        rule["Expiration"] = {"Days": expire}
    transition = form_int(form, "transition_days", "Transition after")
    if transition is not None:
        rule["Transitions"] = [{"Days": transition, "StorageClass": form.get("transition_class", "")}]
    noncurrent = form_int(form, "noncurrent_days", "Expire noncurrent versions after")
    if noncurrent is not None:
        rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": noncurrent}
    abort = form_int(form, "abort_days", "Abort incomplete uploads after")
    if abort is not None:
        rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": abort}
    return rule


async def _put_lifecycle(page: Page, name: str, config: dict, done: str) -> HttpResponse:
    back = url("/s3/settings", bucket=name)
    if not config.get("Rules"):  # S3 wants at least one rule: no rules is no configuration
        return await page.act("s3", "delete_bucket_lifecycle", done, back, Bucket=name)
    return await page.act(
        "s3", "put_bucket_lifecycle_configuration", done, back, Bucket=name, **_lifecycle_params(config)
    )


def _lifecycle_params(config: dict) -> dict:
    params: dict[str, Any] = {"LifecycleConfiguration": {"Rules": config["Rules"]}}
    if config.get("TransitionDefaultMinimumObjectSize"):
        params["TransitionDefaultMinimumObjectSize"] = config["TransitionDefaultMinimumObjectSize"]
    return params


async def add_rule(page: Page) -> HttpResponse:
    name = page.form.get("bucket", "")
    rule = _rule_from_form(page.form)
    config = await read_lifecycle(page, name)
    config["Rules"] = [*config.get("Rules", []), rule]
    return await _put_lifecycle(page, name, config, f"Added lifecycle rule {rule.get('ID', '')} to {name}.")


async def delete_rule(page: Page) -> HttpResponse:
    name, rule_id = page.form.get("bucket", ""), page.form.get("id", "")
    config = await read_lifecycle(page, name)
    kept = [r for r in config.get("Rules", []) if r.get("ID") != rule_id]
    if len(kept) == len(config.get("Rules", [])):
        raise AwsError("NoSuchLifecycleRule", f"{name} has no lifecycle rule {rule_id} (any more).", 404)
    config["Rules"] = kept
    return await _put_lifecycle(page, name, config, f"Deleted lifecycle rule {rule_id} of {name}.")


async def put_lifecycle_json(page: Page) -> HttpResponse:
    """The whole configuration from the JSON editor ({"Rules": [...]}, as GetBucketLifecycleConfiguration
    answers it); botocore checks its shape, S3 its sense."""
    name = page.form.get("bucket", "")
    try:
        config = json.loads(page.form.get("config", "") or "{}")
    except ValueError as e:
        raise AwsError("MalformedJSON", f"The lifecycle configuration is not JSON: {e}") from None
    if not isinstance(config, dict) or not isinstance(config.get("Rules", []), list):
        raise AwsError("MalformedJSON", 'The lifecycle configuration is an object: {"Rules": [...]}')
    return await _put_lifecycle(page, name, config, f"Saved the lifecycle configuration of {name}.")


ROUTES = {
    ("GET", "/s3/settings"): settings,
    ("POST", "/s3/encryption"): set_encryption,
    ("POST", "/s3/lifecycle/add"): add_rule,
    ("POST", "/s3/lifecycle/delete"): delete_rule,
    ("POST", "/s3/lifecycle/json"): put_lifecycle_json,
}
