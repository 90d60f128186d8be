from modelfarm.cli import main

main()
