from medsign.cli.main import main

main()
