"""Qt-free core of EdgeStudio: formats, inspection, jobs, workspace. Never imports PySide6."""
