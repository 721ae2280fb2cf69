"""``ctguard top``: frames of counters, rates and table composition, at a bounded cost.

    frames.py      the records (CounterSample, Rates, TableView, NamespaceShare, TopFrame)
                   and the pure functions that make them (compute_rates, table_view)
    schedule.py    when the table may be read again (TABLE_DUTY of one core at most)
    sampler.py     TopSampler: a TopFrame per refresh from three readers
    new_events.py  the ``new`` rate: ctnetlink NEW events counted while top runs
    probe.py       Probe, which reads the namespace it runs in, and RemoteProbe, which
                   asks one that runs in a NetnsWorker (host/netns_worker.py)
    namespaces.py  the busiest namespaces, for top on the host
    session.py     top_session: the probe started in its namespace, the sampler wired

Other modules import from here; ``__all__`` is what they use.
"""

from ctguard.usecases.top.frames import (
    CounterSample,
    NamespaceShare,
    Rates,
    TableView,
    TopFrame,
    compute_rates,
    table_view,
)
from ctguard.usecases.top.namespaces import busiest_namespaces
from ctguard.usecases.top.new_events import NewEventCounter, open_new_events
from ctguard.usecases.top.probe import Probe, RemoteProbe
from ctguard.usecases.top.sampler import (
    CounterReader,
    NamespaceReader,
    TableReader,
    TopSampler,
    one_frame,
)
from ctguard.usecases.top.schedule import TABLE_DUTY, next_due
from ctguard.usecases.top.session import top_session, with_global_max

__all__ = [
    "TABLE_DUTY",
    "CounterReader",
    "CounterSample",
    "NamespaceReader",
    "NamespaceShare",
    "NewEventCounter",
    "Probe",
    "Rates",
    "RemoteProbe",
    "TableReader",
    "TableView",
    "TopFrame",
    "TopSampler",
    "busiest_namespaces",
    "compute_rates",
    "next_due",
    "one_frame",
    "open_new_events",
    "table_view",
    "top_session",
    "with_global_max",
]
