"""The kinds of message this service sends, and which of them a person cannot turn off.

A kind names a template (`templates/<kind>.jinja`), the channels it goes out on by default and
the web app page its message links to (a path under APP_URL; see the web app's routes).
Mandatory kinds bypass preferences (channel switches, quiet hours, digests): they are the
messages a person must get to keep their account safe or to know it exists, and every one of
them says so in its text. Urgent kinds are sent before anything else waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

EMAIL, IN_APP, WEBHOOK = "email", "in_app", "webhook"
PERSON_CHANNELS = (EMAIL, IN_APP)


@dataclass(frozen=True)
class Kind:
    name: str
    description: str
    channels: tuple[str, ...] = PERSON_CHANNELS
    mandatory: bool = False
    webhook: bool = False  # also announced to the network's webhook endpoints
    page: str | None = None  # the web app page the message links to, e.g. "/mentorships/{mentorship_id}"
    urgent: bool = False  # claimed before every other waiting delivery


MENTORSHIP_PAGE = "/mentorships/{mentorship_id}"
FOLLOW_UP_PAGE = "/coordinate/follow-up"
PREFERENCES_PAGE = "/notifications/preferences"
UNSUBSCRIBE_PAGE = "/unsubscribe"


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("welcome", "Your account was created (tells you an account exists with your address)",
             mandatory=True, webhook=True, page="/profile"),
        Kind("account_security", "Security notices about your account", mandatory=True),
        Kind("sign_in_link", "The sign-in link you asked for", channels=(EMAIL,), mandatory=True,
             urgent=True),
        Kind("match_proposed", "A mentor or mentee was proposed to you", webhook=True,
             page=MENTORSHIP_PAGE),
        Kind("match_accepted", "The other side accepted a proposal", channels=(IN_APP,),
             page=MENTORSHIP_PAGE),
        Kind("introduction", "Your mentorship started: introduction and first-meeting agenda",
             webhook=True, page=MENTORSHIP_PAGE),
        Kind("meeting_scheduled", "A meeting was scheduled (with a calendar invitation)",
             webhook=True, page=MENTORSHIP_PAGE),
        Kind("meeting_reminder", "Reminder before a meeting", page=MENTORSHIP_PAGE),
        Kind("nudge", "No meeting for a while: a nudge to meet", page=MENTORSHIP_PAGE),
        Kind("stalled_pair", "A pair in your program stays silent", channels=(EMAIL,),
             webhook=True, page=FOLLOW_UP_PAGE),
        Kind("checkin_request", "Check-in and feedback requests at reassessment points",
             page=MENTORSHIP_PAGE),
        Kind("milestone", "A milestone was achieved", webhook=True, page=MENTORSHIP_PAGE),
        Kind("mentor_recognition", "Thanks for your time as a mentor", webhook=True,
             page=MENTORSHIP_PAGE),
        Kind("mentorship_ended", "A mentorship ended", channels=(IN_APP,), webhook=True,
             page=MENTORSHIP_PAGE),
        Kind("coordinator_digest", "Daily or weekly summary for coordinators", channels=(EMAIL,),
             page=FOLLOW_UP_PAGE),
        Kind("personal_digest", "Your messages gathered in one email", channels=(EMAIL,),
             page="/notifications"),
    )
}


def kind(name: str) -> Kind:
    return KINDS[name]
