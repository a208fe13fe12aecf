"""Record contracts: Arrow schemas, vocabularies and their versions."""
