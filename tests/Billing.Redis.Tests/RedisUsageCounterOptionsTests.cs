using Billing.InMemory;
using Billing.Ports;
using Billing.Testing.Servers;
using Billing.Usage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using static Billing.Redis.Tests.RedisUsageCounterTests;

namespace Billing.Redis.Tests;

/// <summary>Options validation and the <c>AddRedisUsageCounters</c> registration.</summary>
public sealed class RedisUsageCounterOptionsTests
{
    [Theory]
    [InlineData(null, "billing", 70, 1000, "ConfigurationString is empty")]
    [InlineData("localhost:6379,nonsense=1", "billing", 70, 1000, "ConfigurationString is not a valid")]
    [InlineData("abortConnect=false", "billing", 70, 1000, "ConfigurationString names no server")]
    [InlineData("localhost:6379", "", 70, 1000, "KeyPrefix")]
    [InlineData("localhost:6379", "bill{ing}", 70, 1000, "KeyPrefix")]
    [InlineData("localhost:6379", "bill ing", 70, 1000, "KeyPrefix")]
    [InlineData("localhost:6379", "billing", 0, 1000, "DefaultCounterRetention")]
    [InlineData("localhost:6379", "billing", -1, 1000, "DefaultCounterRetention")]
    [InlineData("localhost:6379", "billing", 70, 0, "MaxEventsPerScriptCall")]
    [InlineData("localhost:6379", "billing", 70, 10_001, "MaxEventsPerScriptCall")]
    public async Task Invalid_options_are_rejected_naming_the_option(string? configuration, string prefix, int retentionDays, int perCall, string message)
    {
        var options = new RedisUsageCounterOptions
        {
            ConfigurationString = configuration,
            KeyPrefix = prefix,
            DefaultCounterRetention = TimeSpan.FromDays(retentionDays),
            MaxEventsPerScriptCall = perCall,
        };

        var error = await Assert.ThrowsAsync<ArgumentException>(() => RedisUsageCounter.ConnectAsync(options));
        Assert.Contains("RedisUsageCounterOptions." + message, error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new RedisUsageCounterConnection(options));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(999)]
    [InlineData(400L * 24 * 3600 * 1000 + 1)]
    public void An_idempotency_generation_outside_1_second_to_400_days_is_rejected(long milliseconds)
    {
        var options = new RedisUsageCounterOptions { ConfigurationString = "localhost:6379", IdempotencyGeneration = TimeSpan.FromMilliseconds(milliseconds) };
        var error = Assert.Throws<ArgumentException>(() => new RedisUsageCounterConnection(options));
        Assert.Contains("RedisUsageCounterOptions.IdempotencyGeneration", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(16_385)]
    [InlineData(int.MaxValue)]
    public async Task A_number_of_customer_groups_outside_1_to_16384_is_rejected(int groups)
    {
        var options = new RedisUsageCounterOptions { ConfigurationString = "localhost:6379", CustomerGroups = groups };
        var error = Assert.Throws<ArgumentException>(() => new RedisUsageCounterConnection(options));
        Assert.Contains("RedisUsageCounterOptions.CustomerGroups must be 1 to 16,384", error.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ArgumentException>(() => RedisUsageCounter.ConnectAsync(options));

        var services = new ServiceCollection();
        services.AddBilling().AddRedisUsageCounters(o =>
        {
            o.ConfigurationString = "localhost:6379";
            o.CustomerGroups = groups;
        });
        await using var provider = services.BuildServiceProvider();
        var startup = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains("RedisUsageCounterOptions.CustomerGroups", startup.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(16_384)]
    public async Task One_to_16384_customer_groups_are_accepted_and_used(int groups)
    {
        Assert.Empty(RedisUsageCounterOptionsValidator.Check(new RedisUsageCounterOptions { ConfigurationString = "localhost:6379", CustomerGroups = groups }, requireConnection: true));
        Assert.Equal(16, new RedisUsageCounterOptions().CustomerGroups);
        var server = await LocalRedisServer.SharedAsync();
        var prefix = "groups" + groups.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await using var counter = await RedisUsageCounter.ConnectAsync(new RedisUsageCounterOptions { ConfigurationString = server.ConfigurationString, KeyPrefix = prefix, CustomerGroups = groups });
        var c = NewCustomer();
        Assert.Equal(2, (await counter.RecordAsync(Event(c, "k1", 2))).Total);
        Assert.Equal(2, await counter.GetTotalAsync(Key(c)));
        Assert.StartsWith("2:", (string?)await server.ExecuteAsync("HGET", $"{prefix}:{{g{RedisKeys.GroupOf(c, groups)}}}:c:{DayOf(Key(c).PeriodStart)}", Field(c)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_counter_on_an_existing_multiplexer_needs_no_connection_string_and_leaves_it_open()
    {
        var server = await LocalRedisServer.SharedAsync();
        using var multiplexer = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(server.ConfigurationString);
        var c = NewCustomer();
        using (var counter = new RedisUsageCounter(multiplexer, new RedisUsageCounterOptions { KeyPrefix = "mine" }))
        {
            Assert.Equal(3, (await counter.RecordAsync(Event(c, "k1", 3))).Total);
        }

        Assert.True(multiplexer.IsConnected);
        Assert.StartsWith("3:", (string?)await server.ExecuteAsync("HGET", $"mine:{{g{GroupOf(c)}}}:c:{DayOf(Key(c).PeriodStart)}", Field(c)), StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new RedisUsageCounter(multiplexer, new RedisUsageCounterOptions { KeyPrefix = "{x}" }));
    }

    [Fact]
    public async Task AddRedisUsageCounters_replaces_the_counter_connects_lazily_and_validates_at_start()
    {
        var server = await LocalRedisServer.SharedAsync();
        var services = new ServiceCollection();
        services.AddSingleton<IUsageCounter>(new InMemoryUsageCounter());

        services.AddBilling().AddRedisUsageCounters(o =>
        {
            o.ConfigurationString = server.ConfigurationString;
            o.KeyPrefix = "di";
        });

        await using var provider = services.BuildServiceProvider();
        provider.GetRequiredService<IStartupValidator>().Validate();
        var counter = provider.GetRequiredService<IUsageCounter>();
        Assert.IsType<RedisUsageCounter>(counter);
        Assert.Same(counter, provider.GetRequiredService<RedisUsageCounter>());
        Assert.Single(services, d => d.ServiceType == typeof(IUsageCounter));
        var c = NewCustomer();
        Assert.Equal(new UsageCounterResult(UsageOutcome.Accepted, 4), await counter.RecordAsync(Event(c, "k1", 4)));
        Assert.StartsWith("4:", (string?)await server.ExecuteAsync("HGET", $"di:{{g{GroupOf(c)}}}:c:{DayOf(Key(c).PeriodStart)}", Field(c)), StringComparison.Ordinal);
        var multiplexer = await provider.GetRequiredService<RedisUsageCounterConnection>().GetMultiplexerAsync();
        Assert.True(multiplexer.IsConnected);
        Assert.False(multiplexer.PreserveAsyncOrder);
    }

    [Fact]
    public async Task Resolving_does_not_connect_and_a_failed_connect_is_retried()
    {
        var services = new ServiceCollection();
        services.AddBilling().AddRedisUsageCounters(o => o.ConfigurationString = "127.0.0.1:1,connectTimeout=500,connectRetry=1"); // nothing listens on port 1

        await using var provider = services.BuildServiceProvider();
        var counter = provider.GetRequiredService<IUsageCounter>(); // no connection yet
        var c = NewCustomer();
        await Assert.ThrowsAsync<StackExchange.Redis.RedisConnectionException>(async () => await counter.RecordAsync(Event(c, "k1", 1)));
        await Assert.ThrowsAsync<StackExchange.Redis.RedisConnectionException>(async () => await counter.GetTotalAsync(Key(c)));
    }

    [Fact]
    public void Invalid_options_fail_at_start_with_messages_naming_each_option()
    {
        var services = new ServiceCollection();
        services.AddBilling().AddRedisUsageCounters(o =>
        {
            o.KeyPrefix = "{bad}";
            o.DefaultCounterRetention = TimeSpan.Zero;
        });
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());

        Assert.Contains("RedisUsageCounterOptions.ConfigurationString is empty", error.Message, StringComparison.Ordinal);
        Assert.Contains("RedisUsageCounterOptions.KeyPrefix", error.Message, StringComparison.Ordinal);
        Assert.Contains("RedisUsageCounterOptions.DefaultCounterRetention", error.Message, StringComparison.Ordinal);
    }
}
