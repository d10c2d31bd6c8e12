"""One redaction of secrets for every text modelport prints, logs or records."""

from __future__ import annotations

import os
import re

# userinfo of any URL in a text: scheme://user:secret@host -> scheme://***@host (a secret may
# hold '/', so everything up to the first '@' goes; a key with '@' in it is over-redacted)
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s'\"@]*@")
# presigned-URL and token query parameters (a parameter name, not the end of a longer word:
# "bos_token=<s>" is a tokenizer's setting, not a secret)
_QUERY = re.compile(r"(?<![\w-])((?:X-Amz-(?:Signature|Credential|Security-Token)|AWSAccessKeyId"
                    r"|Signature|x-amz-security-token|sig|token)=)[^&\s'\"]+", re.IGNORECASE)
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID",
               "AZURE_STORAGE_KEY", "GOOGLE_APPLICATION_CREDENTIALS_JSON", "OCI_SECRET_KEY")


def redact(text: str) -> str:
    """``text`` without credentials: URL userinfo, signature/token query values, and the
    values of the credential environment variables, each replaced by ``***``."""
    text = _USERINFO.sub(r"\1***@", text)
    text = _QUERY.sub(r"\1***", text)
    for var in _SECRET_ENV:
        value = os.environ.get(var)
        if value and len(value) >= 8 and value in text:
            text = text.replace(value, "***")
    return text


__all__ = ["redact"]
