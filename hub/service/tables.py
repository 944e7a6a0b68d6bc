"""Every table of the platform database in one ``MetaData``: each domain's model module, imported here.

The migrations (``migrations/env.py``), the schema comparison in the tests and the personal-data scan of every table
read ``metadata``; importing this module is what makes it whole, whichever domain was imported first. A new domain
with tables adds its ``models`` module here, and only here.
"""

from __future__ import annotations

from polartep_hub.accounts import models as accounts_models
from polartep_hub.accounts import plan_history  # noqa: F401  (writes the plan history with every plan change)
from polartep_hub.dashboards import models as dashboards_models
from polartep_hub.data import models as data_models
from polartep_hub.processors import models as processors_models
from polartep_hub.projects import models as projects_models
from polartep_hub.service import models as service_models
from polartep_hub.service.orm import Base
from polartep_hub.usage import ledger as usage_ledger  # noqa: F401  (keeps the month totals with the ledger)
from polartep_hub.usage import models as usage_models

metadata = Base.metadata

MODEL_MODULES = (
    accounts_models,
    projects_models,
    usage_models,
    processors_models,
    data_models,
    dashboards_models,
    service_models,
)
