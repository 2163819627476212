from gitops_incidents.cli import main

raise SystemExit(main())
