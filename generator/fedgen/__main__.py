from fedgen.cli import main

main()
