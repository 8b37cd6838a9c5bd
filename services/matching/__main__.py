from services.matching.app import DEFINITION
from shared.service import serve

serve(DEFINITION)
