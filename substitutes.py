from elmo_lm.commands.substitutes import main

if __name__ == "__main__":
    main()
