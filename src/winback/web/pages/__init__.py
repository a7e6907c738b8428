"""The dashboard pages (server-rendered Jinja2, Plotly served locally, little JavaScript).

* :mod:`views`   - the read-only pages (every role; the campaign preview needs a marketer);
* :mod:`actions` - form posts (pause/resume, roll out a winner, suppressions, API keys), each
  checking the role and the session's CSRF token before changing anything;
* :mod:`data`    - the SQL (aggregated in the database, paginated);
* :mod:`charts`  - Plotly figures built server-side as JSON.
"""

from winback.web.pages import actions, views  # noqa: F401 - they register their routes
from winback.web.pages.router import router

__all__ = ["router"]
