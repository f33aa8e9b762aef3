from elmo_lm.commands.plot import main

if __name__ == "__main__":
    main()
