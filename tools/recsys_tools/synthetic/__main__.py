from recsys_tools.synthetic.cli import main

raise SystemExit(main())
