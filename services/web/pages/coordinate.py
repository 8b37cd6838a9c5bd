"""A coordinator's pages: programs, roster, people, enrolment requests, matching, follow-up
and reports."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from services.web.context import csrf_protect

router = APIRouter(dependencies=[Depends(csrf_protect)])
routers = [router]
