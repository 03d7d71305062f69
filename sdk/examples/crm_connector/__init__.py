"""The example connector: the demo CRM (examples.demo_crm) through the connector contract."""
