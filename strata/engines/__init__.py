"""Supervisors for the real servers behind RDS and ElastiCache.

Generic parts: `process` (child processes: run-as user, pidfile, logs, readiness, clean stop,
orphans), `ports` (persistent loopback port allocation), `endpoint` (stable endpoints through
HAProxy). Engine specifics: `postgres`, `mariadb` (and ElastiCache's own modules).
"""
