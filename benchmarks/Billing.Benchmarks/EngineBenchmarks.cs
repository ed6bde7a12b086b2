using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Jobs;
using Billing.Catalog;
using Billing.Customers;
using Billing.Engine;
using Billing.InMemory;
using Billing.Invoices;
using Billing.Periods;
using Billing.Ports;
using Billing.Pricing;
using Billing.Subscriptions;
using Billing.Testing.Payments;
using Billing.Testing.Time;
using Microsoft.Extensions.Options;

namespace Billing.Benchmarks;

/// <summary>Generating one renewal invoice: one plan line, two usage lines, one tax rate.</summary>
[MemoryDiagnoser]
public class RenewalInvoiceBenchmarks
{
    private readonly Price _price = new GraduatedPrice(Currency.USD, [PriceTier.Until(5, 1_000), PriceTier.Unbounded(800)]);
    private readonly TaxRate[] _tax = [new("VAT", 190_000)];
    private readonly BillingPeriod _period = new(new DateTimeOffset(2025, 3, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2025, 4, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly Money _zero = Money.Zero(Currency.USD);

    [Benchmark]
    public Money RenewalInvoice()
    {
        InvoiceLine[] items =
        [
            new(InvoiceLineKind.Plan, "Team × 7", _price.CalculateTotal(7)) { Quantity = 7, Period = _period },
            new(InvoiceLineKind.Usage, "API calls", new Money(12_345, Currency.USD)) { Quantity = 1_234_500, Period = _period, MeterKey = "api_calls" },
            new(InvoiceLineKind.Usage, "Storage", new Money(4_200, Currency.USD)) { Quantity = 42, Period = _period, MeterKey = "storage_gb" },
        ];
        return InvoiceCalculator.Calculate(Currency.USD, items, null, _tax, _zero).Total;
    }
}

/// <summary>
/// The in-memory billing run over 100,000 subscriptions due for renewal at the same instant: each renewal creates its
/// draft invoice (finalization an hour later is not part of this run). Invoices per second = 100,000 / Mean.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(GcModes))]
public class BillingRunBenchmarks
{
    private const int Subscriptions = 100_000;
    private static readonly DateTimeOffset Start = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Renewal = new(2025, 2, 1, 0, 0, 0, TimeSpan.Zero);

    private BillingEngine _engine = null!;

    [IterationSetup]
    public void Setup()
    {
        var store = new InMemoryBillingStore();
        var options = Options.Create(new BillingOptions { RunBatchSize = 1_000 });
        _engine = new BillingEngine(store, new FakePaymentGateway(), new FakeTimeProvider(Renewal), options, new RandomIdGenerator(), new NoUsageCharges());
        var session = store.BeginAsync().AsTask().GetAwaiter().GetResult();
        var plan = new Plan { Id = "plan_bench", Name = "Pro", Price = new FlatPrice(new Money(2_900, Currency.USD)), Interval = BillingInterval.Monthly, CreatedAt = Start };
        session.Plans.Add(plan);
        for (var i = 0; i < Subscriptions; i++)
        {
            var customerId = $"cus_{i:D6}";
            session.Customers.Add(new Customer
            {
                Id = customerId, Name = "Bench", Email = "bench@example.com", Currency = Currency.USD, TimeZoneId = "Etc/UTC",
                CreditBalance = Money.Zero(Currency.USD), DefaultPaymentMethod = FakePaymentGateway.Visa, CreatedAt = Start,
            });
            session.Subscriptions.Add(new Subscription
            {
                Id = $"sub_{i:D6}", CustomerId = customerId, PlanId = plan.Id, Quantity = 1, Status = SubscriptionStatus.Active,
                ScheduleStart = Start, AnchorLocal = new DateTime(2025, 1, 1), CurrentPeriod = new BillingPeriod(Start, Renewal),
                NextActionAt = Renewal, CreatedAt = Start,
            });
        }

        session.CommitAsync().AsTask().GetAwaiter().GetResult();
    }

    /// <summary>Workstation GC (console default) and server GC (ASP.NET Core's default).</summary>
    private sealed class GcModes : BenchmarkDotNet.Configs.ManualConfig
    {
        public GcModes()
        {
            var job = BenchmarkDotNet.Jobs.Job.Default.WithLaunchCount(1).WithWarmupCount(1).WithIterationCount(5).WithInvocationCount(1).WithUnrollFactor(1);
            AddJob(job.WithGcServer(false).WithId("WorkstationGC"), job.WithGcServer(true).WithId("ServerGC"));
        }
    }

    [Benchmark]
    public int Run100kRenewals() => _engine.AdvanceAsync(Renewal).GetAwaiter().GetResult().InvoicesCreated;
}
