"""Where jobs run besides this process's worker pool: Python environments (now), later remote agents, browsers,
Ray. Qt-free; the protocol is versioned dataclasses (:mod:`edgestudio.execution.messages`)."""
