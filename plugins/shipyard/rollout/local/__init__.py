"""The embedded (local) serving stack: a traffic splitter and a load driver, standard library only."""
