"""dcsched: joint energy management and AIGC workload scheduling for geo-distributed data centres."""

__version__ = "0.1.0"
