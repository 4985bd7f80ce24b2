"""Where jobs run: every executor (the local worker pool, Python environments, remote agents, Ray) and placement,
the one place that decides where a job goes. Qt-free; what crosses a process is :mod:`edgestudio.jobs.messages`."""
