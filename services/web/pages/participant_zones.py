"""Time zones offered first in forms (any IANA name is accepted by the services)."""

COMMON_TIME_ZONES = (
    "UTC", "Europe/London", "Europe/Dublin", "Europe/Paris", "Europe/Berlin", "Europe/Madrid",
    "Europe/Lisbon", "Europe/Rome", "Europe/Athens", "Africa/Lagos", "Africa/Nairobi",
    "Asia/Kolkata", "Asia/Singapore", "Asia/Tokyo", "Australia/Sydney", "America/St_Johns",
    "America/Halifax", "America/New_York", "America/Chicago", "America/Denver",
    "America/Phoenix", "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu",
    "America/Mexico_City", "America/Bogota", "America/Sao_Paulo",
)
