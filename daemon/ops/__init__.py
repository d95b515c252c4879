"""What operators see and systemd asks: logs, metrics and health, the notify protocol, ``status``."""
