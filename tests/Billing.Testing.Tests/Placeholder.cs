namespace Billing.Testing.Tests;
