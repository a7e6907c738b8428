"""The REST API under ``/api/v1`` (see ``winback.web.api.*`` for the routers).

* ``customers``    - list (paging, filters) and one customer's timeline;
* ``segments``     - segments and their members;
* ``campaigns``    - campaigns, their results, pause/resume;
* ``results``      - every campaign's results against its holdout;
* ``suppressions`` - the suppression list;
* ``events``       - live events (track, batch, identify) with group commit (``writer``).

Roles: viewer reads customers, segments, campaigns and results; marketer also reads and adds
suppressions, pauses/resumes campaigns and sends events; admin also lifts suppressions.
"""

from fastapi import APIRouter

from winback.web.api import campaigns, customers, events, results, segments, suppressions

router = APIRouter(prefix="/api/v1")
for _module in (customers, segments, campaigns, results, suppressions, events):
    router.include_router(_module.router)
