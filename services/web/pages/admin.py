"""A network admin's pages: institutions, vocabularies, grants, webhooks, templates,
deliveries and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from services.web.context import csrf_protect

router = APIRouter(dependencies=[Depends(csrf_protect)])
routers = [router]
