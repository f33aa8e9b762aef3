from elmo_lm.commands.export import main

if __name__ == "__main__":
    main()
