from services.profiles.app import DEFINITION
from shared.service import serve

serve(DEFINITION)
