"""Intake's storage adapters: upload URLs (SAS) and the record of uploads issued."""

from __future__ import annotations

from .upload_log import TableUploadLog
from .upload_signers import AccountKeyUploadSigner, UserDelegationUploadSigner

__all__ = ["AccountKeyUploadSigner", "TableUploadLog", "UserDelegationUploadSigner"]
