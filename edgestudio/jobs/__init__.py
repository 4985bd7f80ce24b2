"""Jobs: the typed contract every execution target speaks (messages, the context a job function gets), the job
functions (one per kind) and the one runner (request -> messages) that every worker loop uses. Below
:mod:`edgestudio.execution`: nothing here knows where a job runs."""
