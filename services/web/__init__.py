"""The web app: a backend-for-frontend that serves the platform's pages to people."""
