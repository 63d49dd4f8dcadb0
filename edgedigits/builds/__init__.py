"""Stage 3, builds: the jobs that run the whole chain: the search (tune) and the digit gate's training (gate).
Imports export and training, never serving or the command face."""
