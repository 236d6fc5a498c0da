from vidcls.cli import main

raise SystemExit(main())
