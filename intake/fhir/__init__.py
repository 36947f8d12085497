"""FHIR out of the service: what is published, how it is searched, bulk export, and the EHR push."""
