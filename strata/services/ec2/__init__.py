"""ec2 service."""
