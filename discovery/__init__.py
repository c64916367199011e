"""rdsproxy discovery: keeps a registry of db resources in step with AWS RDS Proxies."""

__version__ = "0.1.0"
