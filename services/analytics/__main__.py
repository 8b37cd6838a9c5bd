from services.analytics.app import DEFINITION
from shared.service import serve

serve(DEFINITION)
