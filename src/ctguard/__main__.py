from ctguard.cli import main

raise SystemExit(main())
