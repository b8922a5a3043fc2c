"""The only modules that speak HTTP: the WordPress client, the Ortto client and what they share."""
