"""Meeting invitations as iCalendar (RFC 5545) with the `icalendar` library (pure).

The UID is the meeting's id and SEQUENCE grows with each rescheduling, so calendars update the
event they already hold instead of adding a second one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from icalendar import Alarm, Calendar, Event, vCalAddress, vText

PRODID = "-//Mentorship Platform//Notifications//EN"


def invitation(
    *,
    meeting_id: str,
    sequence: int,
    summary: str,
    starts_at: datetime,
    duration_minutes: int,
    location: str,
    description: str,
    organizer_email: str,
    attendees: list[tuple[str, str]],
    stamp: datetime,
) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "REQUEST")
    event = Event()
    event.add("uid", f"{meeting_id}@mentorship.local")
    event.add("sequence", sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", starts_at)
    event.add("dtend", starts_at + timedelta(minutes=duration_minutes))
    event.add("summary", summary)
    event.add("description", description)
    if location:
        event.add("location", location)
    organizer = vCalAddress(f"mailto:{organizer_email}")
    organizer.params["cn"] = vText("Mentorship")
    event["organizer"] = organizer
    for name, address in attendees:
        attendee = vCalAddress(f"mailto:{address}")
        attendee.params["cn"] = vText(name)
        attendee.params["role"] = vText("REQ-PARTICIPANT")
        event.add("attendee", attendee, encode=0)
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", summary)
    alarm.add("trigger", timedelta(minutes=-30))
    event.add_component(alarm)
    calendar.add_component(event)
    return calendar.to_ical()
