"""Static checks make test runs beside the tests: checkov on the translated template."""
