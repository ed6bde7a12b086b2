using Billing.Customers;
using Billing.Engine;
using Billing.Invoices;
using Billing.SampleHost.Http;

namespace Billing.SampleHost.Endpoints;

/// <summary>A tax rate: <c>partsPerMillion</c> 0–1,000,000 (190000 is 19%), exclusive unless <c>inclusive</c>.</summary>
internal sealed class TaxRateInput
{
    public string? Name { get; init; }

    public long? PartsPerMillion { get; init; }

    public bool? Inclusive { get; init; }
}

/// <summary>POST /v1/customers.</summary>
internal sealed class CreateCustomerRequest
{
    public string? Name { get; init; }

    public string? Email { get; init; }

    public string? Currency { get; init; }

    public string? TimeZone { get; init; }

    public string? PaymentMethod { get; init; }

    public List<TaxRateInput>? TaxRates { get; init; }

    public string? TestClockId { get; init; }

    public Dictionary<string, string>? Metadata { get; init; }

    public NewCustomer ToNewCustomer(bool testClocksEnabled)
    {
        var errors = new FieldErrors();
        Validation.Name(errors, "name", Name, required: true);
        CustomerMapping.Email(errors, Email, required: true);
        var currency = Validation.Currency(errors, "currency", Currency);
        Validation.TimeZone(errors, "timeZone", TimeZone);
        CustomerMapping.PaymentMethod(errors, PaymentMethod);
        var rates = CustomerMapping.TaxRates(errors, TaxRates);
        Validation.Metadata(errors, "metadata", Metadata);
        if (TestClockId is not null)
        {
            errors.Check(testClocksEnabled, "testClockId", "Test clocks are disabled on this host (Billing:TestClocks:Enabled).");
            errors.Check(Validation.Id(TestClockId), "testClockId", "testClockId is a test clock id.");
        }

        errors.ThrowIfAny();
        return new NewCustomer(Name!, Email!, currency!)
        {
            TimeZoneId = TimeZone,
            PaymentMethod = PaymentMethod,
            TaxRates = rates,
            TestClockId = TestClockId,
            Metadata = Metadata,
        };
    }
}

/// <summary>PATCH /v1/customers/{id}: name, email, time zone, default payment method, tax rates (the currency never
/// changes; the engine has no metadata update yet).</summary>
internal sealed class UpdateCustomerRequest
{
    public string? Name { get; init; }

    public string? Email { get; init; }

    public string? TimeZone { get; init; }

    public string? PaymentMethod { get; init; }

    public List<TaxRateInput>? TaxRates { get; init; }

    public IReadOnlyList<TaxRate>? Validate()
    {
        var errors = new FieldErrors();
        Validation.Name(errors, "name", Name, required: false);
        CustomerMapping.Email(errors, Email, required: false);
        Validation.TimeZone(errors, "timeZone", TimeZone);
        CustomerMapping.PaymentMethod(errors, PaymentMethod);
        var rates = CustomerMapping.TaxRates(errors, TaxRates);
        errors.ThrowIfAny();
        return TaxRates is null ? null : rates;
    }
}

/// <summary>POST /v1/customers/{id}/credit_balance_adjustments: <c>amount</c> in minor units (negative takes
/// credit away), in the customer's <c>currency</c>.</summary>
internal sealed class CreditBalanceAdjustmentRequest
{
    public long? Amount { get; init; }

    public string? Currency { get; init; }

    public Money Validate()
    {
        var errors = new FieldErrors();
        errors.Check(Amount is not null and not 0, "amount", "amount is a non-zero whole number of minor units (negative to take credit away).");
        var currency = Validation.Currency(errors, "currency", Currency);
        errors.ThrowIfAny();
        return new Money(Amount!.Value, currency!);
    }
}

internal sealed record TaxRateDto(string Name, long PartsPerMillion, bool Inclusive);

/// <summary>A customer as the API shows it; <c>creditBalance</c> is minor units of <c>currency</c>.</summary>
internal sealed record CustomerDto(
    string Id,
    string Object,
    string Name,
    string Email,
    string Currency,
    string TimeZone,
    string? PaymentMethod,
    long CreditBalance,
    IReadOnlyList<TaxRateDto> TaxRates,
    string? ExternalId,
    string? TestClockId,
    IReadOnlyDictionary<string, string> Metadata,
    DateTimeOffset CreatedAt)
{
    public static CustomerDto From(Customer c) => new(
        c.Id,
        "customer",
        c.Name,
        c.Email,
        c.Currency.Code,
        c.TimeZoneId,
        c.DefaultPaymentMethod,
        c.CreditBalance.MinorUnits,
        [.. c.TaxRates.Select(t => new TaxRateDto(t.Name, t.PartsPerMillion, t.Inclusive))],
        c.ExternalId,
        c.TestClockId,
        c.Metadata,
        c.CreatedAt);
}

internal static class CustomerMapping
{
    /// <summary>The <c>email</c> list filter: one address, matched exactly (case-sensitive); null when absent.</summary>
    public static string? EmailFilter(FieldErrors errors, HttpRequest request)
    {
        var values = request.Query["email"];
        if (values.Count == 0)
        {
            return null;
        }

        return errors.Check(values.Count == 1 && values[0] is { Length: >= 1 and <= 320 }, "email", "email is one address (1 to 320 characters).") ? values[0] : null;
    }

    public static void Email(FieldErrors errors, string? email, bool required)
    {
        if (email is null)
        {
            errors.Check(!required, "email", "email is required.");
            return;
        }

        var at = email.IndexOf('@', StringComparison.Ordinal);
        errors.Check(email.Length is >= 3 and <= 320 && at > 0 && at < email.Length - 1 && at == email.LastIndexOf('@') && !email.Any(char.IsWhiteSpace), "email", "email is not a valid address.");
    }

    public static void PaymentMethod(FieldErrors errors, string? token) =>
        errors.Check(token is null || (token.Length is >= 1 and <= 255 && token.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-')), "paymentMethod", "paymentMethod is a payment method token (letters, digits, '_' or '-', at most 255).");

    public static IReadOnlyList<TaxRate> TaxRates(FieldErrors errors, List<TaxRateInput>? input)
    {
        if (input is null)
        {
            return [];
        }

        if (!errors.Check(input.Count <= 5, "taxRates", "At most 5 tax rates."))
        {
            return [];
        }

        var rates = new List<TaxRate>();
        for (var i = 0; i < input.Count; i++)
        {
            var r = input[i];
            var ok = errors.Check(r is not null, $"taxRates[{i}]", "A tax rate is required.")
                && errors.Check(!string.IsNullOrWhiteSpace(r!.Name) && r.Name.Length <= 100, $"taxRates[{i}].name", "name has 1 to 100 characters.")
                && errors.Check(r.PartsPerMillion is >= 0 and <= 1_000_000, $"taxRates[{i}].partsPerMillion", "partsPerMillion is 0 to 1,000,000 (190000 is 19%).");
            if (ok)
            {
                rates.Add(new TaxRate(r!.Name!, r.PartsPerMillion!.Value, r.Inclusive ?? false));
            }
        }

        errors.Check(rates.Select(r => r.Inclusive).Distinct().Count() <= 1, "taxRates", "Tax rates must be all inclusive or all exclusive.");
        return rates;
    }
}
