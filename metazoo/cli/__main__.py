from metazoo.cli.main import main

raise SystemExit(main())
