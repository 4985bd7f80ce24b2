from edgestudio.cli import main

raise SystemExit(main())
