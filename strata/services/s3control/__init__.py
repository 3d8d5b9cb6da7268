"""S3 Control: the account-level S3 settings (today Block Public Access)."""
