import sys

from services.notifications.app import DEFINITION
from services.notifications.config import unsubscribe_secret
from shared.secrets import MissingSecret
from shared.service import serve

try:
    unsubscribe_secret()  # refuse to start without it outside development, before anything else
except MissingSecret as exc:
    print(f"notifications cannot start: {exc}", file=sys.stderr)
    sys.exit(2)
serve(DEFINITION)
