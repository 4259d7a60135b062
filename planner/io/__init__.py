"""Reading and writing books and plan files; nothing else in the planner touches files."""
