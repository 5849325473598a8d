"""Job lifecycle (create, queue, run, cancel, resume) and executors: a service layer."""
