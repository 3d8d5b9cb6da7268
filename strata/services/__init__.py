"""AWS services, one package each."""
