import uvicorn

from services.web.app import create_web_app
from services.web.config import WebSettings

settings = WebSettings()
uvicorn.run(
    create_web_app(settings),
    host=settings.http_host,
    port=settings.port,
    log_config=None,
    access_log=False,
    timeout_graceful_shutdown=10,
)
