"""What every mobilelat command line shares, below all the other packages (it imports none of them).

- ``mobilelat.errors``   the one ``UsageError`` base and the exit statuses, as named constants;
- ``mobilelat.cli``      ``run_cli(main, argv)``: one-line errors, Ctrl-C, closed pipes, ``--json`` errors;
- ``mobilelat.console``  progress on stderr, results on stdout, third-party chatter into a log file;
- ``mobilelat.sizes``    the one parser and rule for ``--input-size``;
- ``mobilelat.paths``    output folders checked before any work, and removed again when left empty.
"""
